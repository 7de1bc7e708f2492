"""darn's PyTorch package on CPU tensors (darn's CPU backend): values against fp64, gradients, dropout,
flash-attn's return conventions, strides, shapes, modules, errors. Runs with Debian 12's torch 1.13."""
import subprocess
import sys

import pytest
import torch

import darn
from conftest import (DTYPES, ULP, assert_bitwise, assert_close_to, keep_mask, reference, residual_out_dtype,
                      subprocess_env)

needs_custom_op = pytest.mark.skipif(not darn.HAS_CUSTOM_OP,
                                     reason="torch.library.custom_op / register_fake need torch >= 2.4 (have %s)"
                                     % torch.__version__)


def make(shape, dtype, requires_grad=False, scale=1.0, shift=0.0):
    t = (torch.randn(shape, dtype=torch.float32) * scale + shift).to(dtype)
    return t.requires_grad_(requires_grad)


CASES = [
    # norm, x, residual (None / dtype), weight, bias, out, rowscale, zero-centered, residual_in_fp32, p
    ("rms", "f32", None, "f32", None, None, False, False, False, 0.0),
    ("rms", "bf16", "f32", "bf16", None, None, False, False, False, 0.2),
    ("rms", "f16", "f16", "f32", None, "f32", True, False, False, 0.0),
    ("rms", "bf16", None, "f32", None, None, False, True, True, 0.3),
    ("layer", "f32", "f32", "f32", "f32", None, False, False, False, 0.0),
    ("layer", "bf16", "bf16", "bf16", "bf16", None, True, True, False, 0.25),
    ("layer", "f16", None, "f16", "f32", "bf16", False, False, True, 0.0),
    ("layer", "f32", "bf16", "f32", None, None, False, False, False, 0.5),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c))
@pytest.mark.parametrize("shape", [(3, 5, 40), (7, 256)], ids=["3x5x40", "7x256"])
def test_values_and_grads_vs_fp64(case, shape):
    norm, xd, rd, wd, bd, od, has_rs, zc, rfp32, p = case
    is_rms = norm == "rms"
    n = shape[-1]
    x = make(shape, DTYPES[xd], True)
    res = make(shape, DTYPES[rd], True) if rd else None
    w = make((n,), DTYPES[wd], True, 0.5, 0.0 if zc else 1.0)
    b = make((n,), DTYPES[bd], True, 0.1) if bd else None
    rs = torch.rand(shape[:-1]) + 0.5 if has_rs else None
    od_t = DTYPES[od] if od else None
    seed = 1234 + len(shape)
    y, h, mask, none = darn.layer_norm_fn(x, w, b, res, eps=1e-5, dropout_p=p, rowscale=rs, prenorm=True,
                                          residual_in_fp32=rfp32, zero_centered_weight=zc, is_rms_norm=is_rms,
                                          return_dropout_mask=True, out_dtype=od_t, seed=seed, offset=7)
    assert none is None
    out_dtype = od_t or x.dtype
    assert y.shape == x.shape and y.dtype == out_dtype
    assert h.shape == x.shape and h.dtype == residual_out_dtype(x, res, rfp32)
    if p > 0:
        assert mask.shape == x.shape and mask.dtype == torch.bool
        assert torch.equal(mask.reshape(-1, n), keep_mask(x.numel() // n, n, p, seed, 7))
        keep = mask
    else:
        assert mask is None
        keep = None
    xr = x.detach().clone().requires_grad_(True)
    resr = res.detach().clone().requires_grad_(True) if res is not None else None
    wr = w.detach().clone().requires_grad_(True)
    br = b.detach().clone().requires_grad_(True) if b is not None else None
    y64, h64 = reference(xr, wr, br, resr, 1e-5, p, rs, keep, is_rms, zc, rfp32)
    assert_close_to(h, h64, h.dtype, rel=1)
    assert_close_to(y, y64, out_dtype, rel=1)
    # Gradients: through both outputs (the prenorm output's gradient flows in as dresidual_out).
    gy = torch.randn(shape).to(out_dtype)
    gh = torch.randn(shape).to(h.dtype)
    torch.autograd.backward([y, h], [gy, gh])
    torch.autograd.backward([y64, h64], [gy.double(), gh.double()])
    # dx etc. are rounded once to their dtype after fp32 math on fp32/rounded terms: a loose fp64 check.
    for got, ref, what in ((x.grad, xr.grad, "dx"), (w.grad, wr.grad, "dweight"),
                           (res.grad if res is not None else None, resr.grad if resr is not None else None,
                            "dresidual"), (b.grad if b is not None else None, br.grad if br is not None else None,
                                           "dbias")):
        if ref is None:
            assert got is None, what
            continue
        assert got is not None and got.dtype == {"dx": x, "dweight": w, "dresidual": res, "dbias": b}[what].dtype
        # one rounding to the gradient's dtype, plus fp32 accumulation noise relative to the largest term
        scale = ref.abs().max().item() + gy.abs().max().item()
        tol = 2 * ULP[got.dtype] * ref.abs() + 1e-5 * scale * (1 + x.numel() // n / 8)
        err = (got.double() - ref).abs()
        assert (err <= tol).all(), "%s: max err %g, tol there %g" % (what, err.max().item(), tol.flatten()[err.argmax()].item())


@pytest.mark.parametrize("is_rms", [True, False])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_gradcheck_fp32(is_rms, p):
    # darn computes in fp32, so gradcheck runs on fp32 inputs with a coarse eps and matching tolerances;
    # a fixed seed keeps the dropout mask the same across gradcheck's evaluations.
    x = make((3, 16), torch.float32, True)
    res = make((3, 16), torch.float32, True)
    w = make((16,), torch.float32, True, 0.3, 1.0)
    b = make((16,), torch.float32, True, 0.1)
    rs = torch.rand(3) + 0.5

    def f(x, res, w, b):
        y, h = darn.layer_norm_fn(x, w, b, res, dropout_p=p, rowscale=rs, prenorm=True, is_rms_norm=is_rms,
                                  seed=99)
        return y, h

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.autograd.gradcheck(f, (x, res, w, b), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_mask_and_dropout_semantics():
    x = make((4, 64), torch.float32)
    w = torch.ones(64)
    y, h, mask, _ = darn.rms_norm_fn(x, w, None, dropout_p=0.5, prenorm=True, return_dropout_mask=True, seed=5)
    scale = float(torch.tensor(1 / 0.5, dtype=torch.float32))
    assert torch.equal(h, torch.where(mask, x * scale, torch.zeros_like(x)))
    assert 0.3 < mask.float().mean().item() < 0.7
    # p = 1 drops everything; p = 0 with return_dropout_mask gives None (flash-attn)
    _, h1 = darn.rms_norm_fn(x, w, None, dropout_p=1.0, prenorm=True, seed=5)
    assert torch.equal(h1, torch.zeros_like(x))
    y0, m0, m1 = darn.rms_norm_fn(x, w, None, return_dropout_mask=True)
    assert m0 is None and m1 is None


def test_backward_regenerates_mask_bitwise():
    """The backward regenerates the mask from (seed, offset) unless the mask was returned: same bits."""
    grads = []
    for want_mask in (False, True):
        x = make((5, 48), torch.bfloat16, True)
        torch.manual_seed(1)
        x = make((5, 48), torch.bfloat16, True)
        w = make((48,), torch.bfloat16, True, 0.2, 1.0)
        outs = darn.rms_norm_fn(x, w, None, dropout_p=0.4, return_dropout_mask=want_mask, seed=77, offset=3)
        y = outs[0] if want_mask else outs
        y.float().square().sum().backward()
        grads.append((x.grad, w.grad))
    assert_bitwise(grads[0][0], grads[1][0], "dx")
    assert_bitwise(grads[0][1], grads[1][1], "dweight")


def test_return_conventions_like_flash_attn():
    x = make((2, 3, 32), torch.float32)
    w = torch.ones(32)
    r = make((2, 3, 32), torch.float32)
    y = darn.layer_norm_fn(x, w, None)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape
    y, h = darn.layer_norm_fn(x, w, None, r, prenorm=True)
    assert torch.equal(h, x + r)
    # no residual, no dropout, no rowscale, no dtype change: residual_out is x itself
    y, h = darn.rms_norm_fn(x, w, None, prenorm=True)
    assert h is x
    y, h, m, m1 = darn.rms_norm_fn(x, w, None, prenorm=True, return_dropout_mask=True)
    assert h is x and m is None and m1 is None
    # residual_in_fp32 without a residual: h is fp32 (a new tensor); with a residual it has the residual's dtype
    xb = x.bfloat16()
    _, h = darn.rms_norm_fn(xb, w, None, prenorm=True, residual_in_fp32=True)
    assert h.dtype == torch.float32 and torch.equal(h, xb.float())
    _, h = darn.rms_norm_fn(xb, w, None, r.half(), prenorm=True, residual_in_fp32=True)
    assert h.dtype == torch.float16
    y = darn.rms_norm_fn(xb, w, None, out_dtype=torch.float32)
    assert y.dtype == torch.float32


def test_repeatable_with_manual_seed_and_fresh_per_call():
    x = make((8, 64), torch.float32)
    w = torch.ones(64)
    torch.manual_seed(42)
    a1 = darn.rms_norm_fn(x, w, None, dropout_p=0.5, return_dropout_mask=True)[1]
    a2 = darn.rms_norm_fn(x, w, None, dropout_p=0.5, return_dropout_mask=True)[1]
    torch.manual_seed(42)
    b1 = darn.rms_norm_fn(x, w, None, dropout_p=0.5, return_dropout_mask=True)[1]
    b2 = darn.rms_norm_fn(x, w, None, dropout_p=0.5, return_dropout_mask=True)[1]
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)


def test_noncontiguous_and_leading_shapes_bitwise():
    n = 40
    w = make((n,), torch.float32, False, 0.2, 1.0)
    b = make((n,), torch.float32, False, 0.1)
    res = make((1, n), torch.float32).expand(6, n)   # row stride 0: copied
    big = make((6, 2 * n + 3), torch.bfloat16)         # x = big[:, 3:3+n]: row stride 2n+3, passed as is
    tall = make((n, 6), torch.bfloat16)                # x = tall.t(): last dim not contiguous, copied
    views = ((big, lambda t: t[:, 3:3 + n]), (tall, lambda t: t.t()))
    for base, view in views:
        base_r = base.detach().clone().requires_grad_(True)
        xr = view(base_r)
        assert not xr.is_contiguous()
        xc = view(base).contiguous().requires_grad_(True)
        ya, ha = darn.layer_norm_fn(xr, w, b, res, dropout_p=0.2, prenorm=True, seed=3)
        yb, hb = darn.layer_norm_fn(xc, w, b, res.contiguous(), dropout_p=0.2, prenorm=True, seed=3)
        assert_bitwise(ya, yb, "y")
        assert_bitwise(ha, hb, "h")
        g = make((12, n), torch.bfloat16)[::2]           # a strided dy as well
        ya.backward(g)
        yb.backward(g.contiguous())
        assert_bitwise(view(base_r.grad), xc.grad, "dx")
    # leading shapes: [2, 3, 4, n] is the same computation as [24, n]
    x4 = make((2, 3, 4, n), torch.float16)
    y4 = darn.rms_norm_fn(x4, w, None, dropout_p=0.1, seed=11)
    y2 = darn.rms_norm_fn(x4.reshape(24, n), w, None, dropout_p=0.1, seed=11)
    assert y4.shape == x4.shape
    assert_bitwise(y4.reshape(24, n), y2, "leading shape")
    # a permuted 3-D tensor whose rows cannot be flattened without a copy
    x3 = make((4, 5, n), torch.float32).permute(1, 0, 2)
    assert_bitwise(darn.rms_norm_fn(x3, w, None), darn.rms_norm_fn(x3.contiguous(), w, None), "permuted")


def test_gradient_only_through_prenorm_output_and_no_grad_path():
    x = make((4, 32), torch.float32, True)
    r = make((4, 32), torch.float32, True)
    w = torch.ones(32, requires_grad=True)
    y, h = darn.rms_norm_fn(x, w, None, r, prenorm=True, dropout_p=0.1, seed=1)
    h.sum().backward()  # dy is implicitly zero
    xs = x.detach()
    keep = darn.rms_norm_fn(xs, w.detach(), None, r.detach(), dropout_p=0.1, seed=1, return_dropout_mask=True)[1]
    scale = float(torch.tensor(1 / 0.9, dtype=torch.float32))
    assert torch.equal(x.grad, keep.float() * scale)
    assert torch.equal(r.grad, torch.ones_like(r))
    assert torch.equal(w.grad, torch.zeros_like(w))
    with torch.no_grad():
        y2 = darn.rms_norm_fn(x, w, None, r, dropout_p=0.1, seed=1)
    assert_bitwise(y.detach(), y2, "no_grad y")


def test_empty_batch():
    x = torch.empty(0, 16, requires_grad=True)
    w = torch.ones(16, requires_grad=True)
    b = torch.zeros(16, requires_grad=True)
    y = darn.layer_norm_fn(x, w, b, dropout_p=0.1)
    assert y.shape == (0, 16)
    y.sum().backward()
    assert torch.equal(w.grad, torch.zeros(16)) and torch.equal(b.grad, torch.zeros(16))


def test_modules():
    torch.manual_seed(0)
    for cls in (darn.RMSNorm, darn.LayerNorm):
        mod = cls(64, eps=1e-5, dropout_p=0.5)
        x = make((4, 64), torch.float32, True)
        mod.train()
        y1 = mod(x)
        mod.eval()
        y2 = mod(x)
        y3 = mod(x)
        assert torch.equal(y2, y3) and not torch.equal(y1, y2)
        (y1.sum() + y2.sum()).backward()
        assert mod.weight.grad is not None
        ref, _ = reference(x.detach(), mod.weight.detach(), mod.bias.detach() if mod.bias is not None else None,
                           eps=1e-5, is_rms_norm=cls is darn.RMSNorm)
        assert_close_to(y2, ref, torch.float32)
    zc = darn.RMSNorm(8, zero_centered_weight=True)
    assert torch.equal(zc.weight, torch.zeros(8))
    for cls in (darn.DropoutAddRMSNorm, darn.DropoutAddLayerNorm):
        mod = cls(64, prenorm=True, p=0.3, residual_in_fp32=True, dtype=torch.bfloat16)
        x = make((2, 3, 64), torch.bfloat16)
        r = make((2, 3, 64), torch.float32)
        out, res = mod(x, r)
        assert out.dtype == torch.bfloat16 and res.dtype == torch.float32 and out.shape == x.shape
        mod.eval()
        out, res = mod(x)
        assert res.dtype == torch.float32 and torch.equal(res, x.float())
        mod2 = cls(64, p=0.3)
        assert isinstance(mod2(x.float()), torch.Tensor)


def test_parallel_residual_arguments_are_accepted():
    # flash-attn's x1 / weight1 / bias1 (tests/test_parallel.py tests them): bias1 alone is the one error
    x = make((2, 8), torch.float32)
    w = torch.ones(8)
    assert isinstance(darn.layer_norm_fn(x, w, None, x1=x), torch.Tensor)
    assert len(darn.layer_norm_fn(x, w, None, weight1=w)) == 2
    with pytest.raises(ValueError, match="bias1 needs weight1"):
        darn.layer_norm_fn(x, w, None, bias1=w)


def test_bad_arguments_raise_clear_errors():
    x = make((2, 8), torch.float32)
    w = torch.ones(8)
    with pytest.raises(ValueError, match="weight has shape"):
        darn.rms_norm_fn(x, torch.ones(7), None)
    with pytest.raises(ValueError, match="residual has shape"):
        darn.rms_norm_fn(x, w, None, torch.ones(2, 7))
    with pytest.raises(ValueError, match="dropout_p"):
        darn.rms_norm_fn(x, w, None, dropout_p=1.5)
    with pytest.raises(ValueError, match="eps"):
        darn.rms_norm_fn(x, w, None, eps=0.0)
    with pytest.raises(ValueError, match="rowscale"):
        darn.rms_norm_fn(x, w, None, rowscale=torch.ones(3))
    with pytest.raises(ValueError, match="offset= needs seed="):
        darn.rms_norm_fn(x, w, None, dropout_p=0.1, offset=4)
    with pytest.raises(TypeError, match="float32, torch.float16 and torch.bfloat16"):
        darn.rms_norm_fn(x.double(), w, None)
    with pytest.raises(TypeError, match="out_dtype"):
        darn.rms_norm_fn(x, w, None, out_dtype=torch.int32)
    with pytest.raises(ValueError, match="last dim"):
        darn.rms_norm_fn(torch.empty(3, 0), torch.ones(0), None)


def test_cached_calls_check_and_compute_like_fresh_ones():
    """Eager calls cache their checks' outcome and darn_desc per argument metadata (darn.ops._plans): after good
    calls, one differing in a single checked property still raises, and every call gives the bits it gives with
    the cache empty (strided tensors, options, grad mode)."""
    from darn import ops
    x, r = make((2, 8), torch.float32), make((2, 8), torch.bfloat16)
    w = make((8,), torch.float32, False, 0.2, 1.0)
    w_strided = torch.stack([w, w], 1)[:, 0]
    r_strided = r.t().contiguous().t()
    calls = [lambda: darn.rms_norm_fn(x, w, None, r),
             lambda: darn.rms_norm_fn(x, w_strided, None, r_strided),
             lambda: darn.rms_norm_fn(x, w, None, r, eps=1e-2, prenorm=True),
             lambda: darn.layer_norm_fn(x, w, w, None, residual_in_fp32=True, prenorm=True,
                                        out_dtype=torch.bfloat16),
             lambda: darn.layer_norm_fn(x, w, None, r, dropout_p=0.3, seed=5, return_dropout_mask=True),
             lambda: darn.rms_norm_fn(x, w.detach().requires_grad_(), None, r, prenorm=True)]

    def flat(v):
        return [t.detach() for t in (v if isinstance(v, tuple) else (v,)) if t is not None]
    fresh = []
    for call in calls:
        ops._plans.clear()
        fresh.append(flat(call()))
    for _ in range(2):
        for call, want in zip(calls, fresh):
            for u, v in zip(flat(call()), want):
                assert_bitwise(u, v)
    with pytest.raises(ValueError, match="weight has shape"):
        darn.rms_norm_fn(x, torch.ones(9), None, r)
    with pytest.raises(ValueError, match="residual has shape"):
        darn.rms_norm_fn(x, w, None, r[:1])
    with pytest.raises(TypeError, match="weight has dtype"):
        darn.rms_norm_fn(x, w.double(), None, r)
    with pytest.raises(ValueError, match="offset= needs seed="):
        darn.rms_norm_fn(x, w, None, r, offset=4)
    with pytest.raises(TypeError, match="residual must be a torch.Tensor"):
        darn.rms_norm_fn(x, w, None, r.tolist())


def test_darn_status_becomes_exception_with_last_error():
    """A status from libdarn itself raises DarnError carrying darn_last_error()."""
    from darn import _lib as L
    d = L.Desc()
    L.F["desc_init"](__import__("ctypes").addressof(d), L.RMSNORM, -1, 8, L.F32)
    t = L.FwdTensors()
    with pytest.raises(darn.DarnArgumentError) as ei:
        L.fwd(d, t, None, 0, L.BACKEND_CPU, None)
    e = ei.value
    assert e.status == 2 and e.status_name == "DARN_ERR_BAD_SHAPE"
    assert "rows" in str(e) and "darn_fwd" in str(e)
    assert isinstance(e, ValueError)


def test_gpu_tensor_without_gpu_library_is_a_clear_error():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA/ROCm device")
    if darn.gpu_available():
        pytest.skip("libdarn has a GPU backend")
    with pytest.raises(RuntimeError, match="DARN_GPU"):
        darn.rms_norm_fn(torch.ones(2, 8, device="cuda"), torch.ones(8, device="cuda"), None)


def test_missing_library_message():
    env, cwd = subprocess_env(DARN_LIBRARY="/nonexistent/libdarn.so")
    r = subprocess.run([sys.executable, "-c", "import darn"], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ImportError: darn: cannot load libdarn" in r.stderr and "/nonexistent/libdarn.so" in r.stderr


def fn_outputs(fb, store_resout, is_rms):
    """_DarnFn's results in darn::fwd's order, (out, residual_out, mask, rstd, mean), None where absent: the
    Function returns (out, residual_out with prenorm, mask) and saves (h, weight, rstd, mean, ...)."""
    from darn import ops
    out, _, mask = fb
    saved = ops._saved(out.grad_fn)
    return out, saved[0] if store_resout else None, mask, saved[2], None if is_rms else saved[3]


def check_op_matches_function(a, fb, args):
    """The op's outputs (absent ones empty tensors) and the Function's, under the one contract of _fwd_impl:
    absent outputs are None after darn.ops._op_outputs, present ones equal bit for bit."""
    from darn import ops
    (x, _, _, _, _, _, p, is_rms, _, _, _, store_resout, store_mask, prenorm, _, _) = args
    assert len(a) == 6 and len(fb) == 3
    na = ops._op_outputs(a, store_resout, store_mask, is_rms, p)
    for raw, norm in zip(a, na):  # absent: an empty tensor from the op
        assert isinstance(raw, torch.Tensor) and (norm is not None or raw.numel() == 0)
    assert (fb[1] is not None) == (prenorm and store_resout)
    assert (fb[2] is not None) == store_mask and (na[2] is not None) == store_mask
    assert (na[1] is not None) == store_resout and (na[4] is None) == is_rms and (na[5] is None) == (p == 0.0)
    for i, (u, v) in enumerate(zip(na[:5], fn_outputs(fb, store_resout, is_rms))):
        assert_bitwise(u, v, "output %d" % i)
    if prenorm and store_resout:
        assert_bitwise(na[1], fb[1], "residual_out")


@needs_custom_op
def test_custom_op_eager_matches_function():
    from darn import ops
    x = make((4, 64), torch.bfloat16, True)
    w = make((64,), torch.float32, True, 0.1, 1.0)
    args = (x.reshape(-1, 64), w, None, None, None, 1e-6, 0.2, True, False, True, ops._CODE[torch.bfloat16],
            True, True, True, 123, 0)
    a = torch.ops.darn.fwd(*args)
    b = ops._DarnFn.apply(*args[:5], args[5:])
    check_op_matches_function(a, b, args)
    ga = torch.autograd.grad(a[0].float().sum() + a[1].sum(), (x, w))
    gb = torch.autograd.grad(b[0].float().sum() + b[1].sum(), (x, w))
    for u, v in zip(ga, gb):
        assert_bitwise(u, v)


@needs_custom_op
def test_torch_compile_fullgraph_cpu():
    def f(x, w, r):
        y, h = darn.rms_norm_fn(x, w, None, r, prenorm=True, dropout_p=0.1, seed=4)
        return y * 2, h

    x = make((4, 64), torch.float32, True)
    w = torch.ones(64, requires_grad=True)
    r = make((4, 64), torch.float32)
    # aot_eager: dynamo (fullgraph: no graph break), fake kernels and the registered autograd, without
    # needing a C++ compiler for inductor's CPU code (test_gpu.py compiles with inductor)
    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    ya, ha = f(x, w, r)
    yb, hb = cf(x, w, r)
    assert_bitwise(ya, yb)
    assert_bitwise(ha, hb)
    ga = torch.autograd.grad(ya.sum(), (x, w))
    gb = torch.autograd.grad(yb.sum(), (x, w))
    assert_bitwise(ga[0], gb[0])
    assert_bitwise(ga[1], gb[1])


class _EmulatedOp(torch.autograd.Function):
    """What register_autograd makes of darn::fwd, on any torch: the op body, its setup_context and backward
    (with darn::bwd's body), so the custom-op path is tested here too."""

    @staticmethod
    def forward(ctx, *inputs):
        from darn import ops
        out = ops._fwd_op_body(*inputs)
        ops._op_setup_context(ctx, inputs, out)
        return out

    @staticmethod
    def backward(ctx, *grads):
        from darn import ops
        return ops._op_backward_with(ops._bwd_op_body)(ctx, *grads)


OP_CONFIGS = [
    # is_rms, x, residual, weight, bias, rowscale, p, residual_in_fp32, store_resout, store_mask, prenorm, seed
    (True, torch.bfloat16, torch.float32, torch.float32, None, False, 0.2, False, True, True, True, 123),
    (True, torch.float32, None, torch.float32, None, False, 0.0, False, False, False, False, None),
    (False, torch.float16, None, torch.float16, torch.float32, True, 0.3, True, True, False, False, 7),
    (False, torch.float32, torch.bfloat16, torch.bfloat16, torch.bfloat16, False, 0.0, False, True, False, True, None),
    (True, torch.bfloat16, None, torch.bfloat16, None, False, 0.5, False, True, True, False, None),
]


@pytest.mark.parametrize("cfg", OP_CONFIGS, ids=[str(i) for i in range(len(OP_CONFIGS))])
def test_custom_op_bodies_fakes_and_autograd(cfg):
    from darn import ops
    is_rms, xd, rd, wd, bd, has_rs, p, rfp32, store_resout, store_mask, prenorm, seed = cfg
    m, n = 5, 72
    x = make((m, n), xd, True)
    r = make((m, n), rd, True) if rd else None
    w = make((n,), wd, True, 0.2, 1.0)
    b = make((n,), bd, True, 0.1) if bd else None
    rs = torch.rand(m) + 0.5 if has_rs else None
    args = (x, w, b, r, rs, 1e-5, p, is_rms, False, rfp32, ops._CODE[xd], store_resout, store_mask, prenorm, seed, 0)
    # the fake kernel describes exactly what the body returns
    real = ops._fwd_op_body(*args)
    fake = ops._fwd_fake(*args)
    for i, (a, f) in enumerate(zip(real, fake)):
        assert (a.shape, a.dtype, a.device) == (f.shape, f.dtype, f.device), i
    # with a fixed seed the op path and the autograd.Function path give the same bits, forward and backward
    if seed is None:
        return
    a = _EmulatedOp.apply(*args)
    fb = ops._DarnFn.apply(*args[:5], args[5:])
    check_op_matches_function(a, fb, args)
    outs_a = [a[0]] + ([a[1]] if store_resout and prenorm else [])
    outs_b = [fb[0]] + ([fb[1]] if store_resout and prenorm else [])
    leaves = [t for t in (x, r, w, b) if t is not None]
    ga = torch.autograd.grad([o.float().sum() for o in outs_a], leaves, allow_unused=True)
    gb = torch.autograd.grad([o.float().sum() for o in outs_b], leaves, allow_unused=True)
    for u, v in zip(ga, gb):
        assert_bitwise(u, v)
    # and the backward fake matches the backward body
    h = a[1] if store_resout else x
    bargs = (a[0].detach(), h.detach(), w, a[3], a[4], rs, None, a[2] if store_mask else None, a[5], 1e-5, p, is_rms,
             False, rfp32, ops._CODE[xd], ops._CODE[rd] if rd else -1, ops._CODE[bd] if bd else -1, True)
    for i, (u, v) in enumerate(zip(ops._bwd_op_body(*bargs), ops._bwd_fake(*bargs))):
        assert (u.shape, u.dtype, u.device) == (v.shape, v.dtype, v.device), i


PATH_CASES = [
    # is_rms, shape, x, residual, weight, bias, rowscale, p, seed, prenorm, return mask, residual_in_fp32
    (True, (4, 48), torch.bfloat16, None, torch.bfloat16, None, False, 0.0, None, False, False, False),
    (True, (4, 48), torch.bfloat16, torch.float32, torch.float32, None, False, 0.0, None, True, False, False),
    (True, (2, 3, 48), torch.float32, None, torch.float32, None, False, 0.0, None, True, True, False),
    (True, (2, 3, 48), torch.float16, None, torch.float32, None, False, 0.3, 5, True, True, True),
    (False, (3, 2, 40), torch.float32, torch.bfloat16, torch.float32, torch.float32, True, 0.2, None, True, True,
     False),
    (False, (40,), torch.bfloat16, torch.bfloat16, torch.bfloat16, torch.bfloat16, False, 0.1, 9, False, True, False),
    (False, (0, 16), torch.float32, torch.float32, torch.float32, torch.float32, False, 0.1, None, True, True, False),
]


@pytest.mark.parametrize("case", PATH_CASES, ids=[str(i) for i in range(len(PATH_CASES))])
def test_public_paths_agree(case, monkeypatch):
    """layer_norm_fn through its three paths: no autograd (_fwd_impl), the autograd.Function, and the custom op
    (what torch.compile traces; run eagerly here, emulated on torch < 2.4): the same results with None and
    `residual_out is x` in the same places, the same bits, and the same gradients."""
    from darn import ops
    is_rms, shape, xd, rd, wd, bd, has_rs, p, seed, prenorm, want_mask, rfp32 = case
    n = shape[-1]
    base = [make(shape, xd), make(shape, rd) if rd else None, make((n,), wd, False, 0.2, 1.0),
            make((n,), bd, False, 0.1) if bd else None]
    rs = torch.rand(shape[:-1]) + 0.5 if has_rs else None
    g = [make(shape, torch.float32) for _ in range(2)]

    def run(grad):
        x, r, w, b = [t.detach().clone().requires_grad_(grad) if t is not None else None for t in base]
        torch.manual_seed(3)
        outs = darn.layer_norm_fn(x, w, b, r, eps=1e-5, dropout_p=p, rowscale=rs, prenorm=prenorm,
                                  residual_in_fp32=rfp32, is_rms_norm=is_rms, return_dropout_mask=want_mask,
                                  seed=seed)
        outs = outs if isinstance(outs, tuple) else (outs,)
        kinds = ["x" if o is x else None if o is None else "tensor" for o in outs]
        grads = []
        if grad:
            ts = [o for o in outs[:2 if prenorm else 1] if o is not x]
            torch.autograd.backward(ts, [gi.to(o.dtype) for gi, o in zip(g, ts)])
            grads = [t.grad for t in (x, r, w, b) if t is not None]
        return outs, kinds, grads

    plain = run(False)
    fn = run(True)
    monkeypatch.setattr(ops, "_is_compiling", lambda: True)
    monkeypatch.setattr(ops, "_op_fwd", torch.ops.darn.fwd if darn.HAS_CUSTOM_OP else _EmulatedOp.apply)
    op = run(True)
    for other, what in ((fn, "autograd.Function"), (op, "custom op")):
        assert other[1] == plain[1], what
        for i, (u, v) in enumerate(zip(plain[0], other[0])):
            assert_bitwise(u if u is None else u.detach(), v if v is None else v.detach(), "%s output %d" % (what, i))
    for i, (u, v) in enumerate(zip(fn[2], op[2])):
        assert_bitwise(u, v, "gradient %d" % i)


def test_threads_share_nothing_per_call():
    """Argument blocks and the CPU workspace are per thread: concurrent calls (forward and backward) give the
    same bits as the same calls made one by one."""
    import threading
    n = 96
    cases = [(make((6, n), torch.bfloat16), make((6, n), torch.float32), make((n,), torch.float32, False, 0.2, 1.0),
              seed) for seed in range(8)]

    def one(case):
        x, r, w, seed = case
        x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
        y, h = darn.layer_norm_fn(x, w, None, r, dropout_p=0.3, prenorm=True, seed=seed)
        y.float().sum().backward()
        return [y.detach(), h.detach(), x.grad, w.grad]

    want = [one(c) for c in cases]
    got = [None] * len(cases)

    def worker(i):
        for _ in range(20):
            got[i] = one(cases[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(want, got):
        for u, v in zip(a, b):
            assert_bitwise(u, v)


def test_eps_beyond_float32_is_darns_error():
    x = make((2, 8), torch.float32)
    with pytest.raises(darn.DarnArgumentError):
        darn.rms_norm_fn(x, torch.ones(8), None, eps=1e300)  # inf as a C float


_FP8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
        if hasattr(torch, n)]
_FP8_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0, "float8_e4m3fnuz": 240.0, "float8_e5m2fnuz": 57344.0}


@pytest.mark.skipif(not _FP8, reason="this torch has no float8 dtypes (torch >= 2.1)")
@pytest.mark.parametrize("fp8", _FP8, ids=str)
def test_fp8_out_dtype_forward(fp8):
    """out_dtype=torch.float8_*: the codes of y saturated to the format's max (docs/numerics.md §9, scale 1), i.e.
    torch's own round-to-nearest-even cast of the f32 output clamped to +-max; forward only."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 300, generator=g, dtype=torch.bfloat16)
    r = torch.randn(7, 300, generator=g)
    w = torch.randn(300, generator=g) * 200  # some |y| past every format's max
    with torch.no_grad():
        y32 = darn.rms_norm_fn(x, w, None, r, out_dtype=torch.float32, seed=1)
        y8 = darn.rms_norm_fn(x, w, None, r, out_dtype=fp8, seed=1)
    assert y8.dtype is fp8 and y8.shape == x.shape
    mx = _FP8_MAX[str(fp8).split(".")[-1]]
    want = y32.clamp(-mx, mx).to(fp8)
    assert torch.equal(y8.view(torch.uint8), want.view(torch.uint8))
    xg = x.clone().requires_grad_()
    with pytest.raises(NotImplementedError, match="fp8"):
        darn.rms_norm_fn(xg, w, None, r, out_dtype=fp8)


# ---- preallocated outputs: out= / residual_out= (flash-attn's keyword arguments) ---------------------------------
SENTINEL = -1234.5  # what the bytes darn must not write hold


def _flat(v):
    return list(v) if isinstance(v, tuple) else [v]


OUT_CASES = [
    # is_rms, shape, x, residual, weight, bias, out_dtype, rowscale, p, prenorm, residual_in_fp32, return mask
    (True, (6, 40), torch.bfloat16, torch.bfloat16, torch.bfloat16, None, None, False, 0.0, True, False, False),
    (True, (2, 3, 40), torch.float16, torch.float32, torch.float32, None, torch.float32, False, 0.3, True, False, True),
    (False, (5, 48), torch.float32, None, torch.float32, torch.float32, None, True, 0.0, False, False, False),
    (False, (4, 48), torch.bfloat16, None, torch.bfloat16, torch.bfloat16, None, False, 0.2, True, True, False),
    (True, (4, 48), torch.float32, None, torch.float32, None, torch.bfloat16, False, 0.0, True, False, False),  # h is x
]


@pytest.mark.parametrize("case", OUT_CASES, ids=[str(i) for i in range(len(OUT_CASES))])
@pytest.mark.parametrize("layout", ["own", "halves", "interleaved_rows", "in_place"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
def test_preallocated_outputs_bitwise(case, layout, grad):
    """out= / residual_out= give the bits of the allocated-output path (outputs and gradients), written into the
    given tensors (own buffers, the two halves of one [.., 2N] buffer, even and odd rows of one buffer, or in
    place over x and residual), nothing written outside their rows; residual_out is neither written nor returned
    when h is x (flash-attn)."""
    is_rms, shape, xd, rd, wd, bd, od, has_rs, p, prenorm, rfp32, want_mask = case
    n = shape[-1]
    torch.manual_seed(7)
    base = [make(shape, xd), make(shape, rd) if rd else None, make((n,), wd, False, 0.2, 1.0),
            make((n,), bd, False, 0.1) if bd else None]
    rs = torch.rand(shape[:-1]) + 0.5 if has_rs else None
    out_dt = od or xd
    h_dt = rd if rd else (torch.float32 if rfp32 else xd)
    h_is_x = rd is None and not has_rs and p == 0.0 and h_dt == xd
    kw = dict(eps=1e-5, dropout_p=p, rowscale=rs, prenorm=prenorm, residual_in_fp32=rfp32, is_rms_norm=is_rms,
              return_dropout_mask=want_mask, out_dtype=od, seed=21 if p else None, offset=4 if p else 0)
    g = [make(shape, torch.float32) for _ in range(2)]

    def leaves():
        return [t.detach().clone().requires_grad_(grad and i != 1) if t is not None else None
                for i, t in enumerate(base)]  # the residual stays without grad: in_place may write over it

    def backward(outs, ts):
        used = [o for o in outs[:2 if prenorm else 1] if o is not ts[0]]
        if grad and used:
            torch.autograd.backward(used, [gi.to(o.dtype) for gi, o in zip(g, used)])
        return [t.grad for t in ts if t is not None and t.requires_grad]

    x, r, w, b = leaves()
    want = _flat(darn.layer_norm_fn(x, w, b, r, **kw))
    want_g = backward(want, (x, r, w, b))
    want = [t.detach() if t is not None else None for t in want]

    x, r, w, b = leaves()
    lead = shape[:-1]
    if layout == "own":
        out = torch.full(shape, SENTINEL, dtype=out_dt)
        ro = torch.full(shape, SENTINEL, dtype=h_dt)
    elif layout == "halves":  # out = buf[..., :N], residual_out = buf[..., N:] (one dtype: both views of buf)
        if out_dt != h_dt:
            pytest.skip("halves of one buffer need one dtype")
        buf = torch.full(lead + (2 * n,), SENTINEL, dtype=out_dt)
        out, ro = buf[..., :n], buf[..., n:]
    elif layout == "interleaved_rows":  # rows 0, 2, 4, ... and 1, 3, 5, ... of one [2M, N] buffer
        if out_dt != h_dt:
            pytest.skip("interleaved rows of one buffer need one dtype")
        m = x.numel() // n
        buf = torch.full((2 * m, n), SENTINEL, dtype=out_dt)
        out, ro = buf[0::2].view(shape), buf[1::2].view(shape)
    else:  # in place: out over x, residual_out over residual (same dtype and strides only)
        if grad or out_dt != xd or r is None or h_dt != r.dtype:
            pytest.skip("in place needs out's dtype = x's, residual_out's = residual's, and no autograd on x")
        out, ro = x, r
    ro_before = ro.clone()
    got = _flat(darn.layer_norm_fn(x, w, b, r, out=out, residual_out=ro, **kw))
    got_g = backward(got, (x, r, w, b))
    assert len(got) == len(want)
    for i, (u, v) in enumerate(zip(got, want)):
        assert (u is None) == (v is None), i
        if u is not None:
            assert_bitwise(u.detach(), v, "output %d" % i)
    # y is the given out (no grad) or a view of it with darn's grad_fn (autograd): its memory either way
    assert got[0].data_ptr() == out.data_ptr()
    if grad:
        assert got[0].grad_fn is not None and "DarnFn" in got[0].grad_fn.name()
    else:
        assert got[0] is out
    assert_bitwise(out, want[0], "out")
    if h_is_x:  # flash-attn: residual_out is not used, the prenorm output is x
        if layout != "in_place":
            assert_bitwise(ro, ro_before, "residual_out untouched")
        if prenorm:
            assert got[1] is x
    else:  # h, also without prenorm (flash-attn writes it whenever h is not x)
        h = want[1] if prenorm else darn.layer_norm_fn(base[0], base[2], base[3], base[1],
                                                       **dict(kw, prenorm=True, return_dropout_mask=False))[1]
        assert_bitwise(ro, h, "residual_out")
        if prenorm:
            assert got[1].data_ptr() == ro.data_ptr()
    for u, v in zip(got_g, want_g):
        assert_bitwise(u, v, "gradient")


def test_preallocated_outputs_strided_rows_leave_gaps_alone():
    """out / residual_out with row stride > N (columns [3, 3 + N) of a wider buffer): the bytes between rows stay."""
    n = 32
    x, r = make((5, n), torch.float32), make((5, n), torch.float32)
    w = make((n,), torch.float32, False, 0.2, 1.0)
    buf = torch.full((5, 2 * n + 7), SENTINEL)
    out, ro = buf[:, 3:3 + n], buf[:, 3 + n + 2:3 + 2 * n + 2]
    y, h = darn.rms_norm_fn(x, w, None, r, prenorm=True, out=out, residual_out=ro)
    y0, h0 = darn.rms_norm_fn(x, w, None, r, prenorm=True)
    assert y is out and h is ro
    assert_bitwise(out, y0)
    assert_bitwise(ro, h0)
    rest = torch.ones_like(buf, dtype=torch.bool)
    rest[:, 3:3 + n] = False
    rest[:, 3 + n + 2:3 + 2 * n + 2] = False
    assert (buf[rest] == SENTINEL).all()


def test_preallocated_outputs_modules_and_custom_op_path(monkeypatch):
    """The modules pass out= / residual_out= through; the custom-op path (what torch.compile traces; emulated on
    torch < 2.4) fills them with the same bits."""
    from darn import ops
    n = 48
    x, r = make((3, n), torch.bfloat16), make((3, n), torch.float32)
    mod = darn.DropoutAddRMSNorm(n, prenorm=True, dtype=torch.bfloat16)
    want = mod(x, r)
    out, ro = torch.empty_like(x), torch.empty_like(r)
    got = mod(x, r, out=out, residual_out=ro)  # the weight requires grad: views of out / ro with darn's grad_fn
    assert got[0].data_ptr() == out.data_ptr() and got[1].data_ptr() == ro.data_ptr()
    for u, v in zip(got, want):
        assert_bitwise(u, v)
    ln = darn.LayerNorm(n, dtype=torch.bfloat16)
    out2 = torch.empty_like(x)
    with torch.no_grad():
        assert ln(x, out=out2) is out2 and torch.equal(out2, ln(x))
    monkeypatch.setattr(ops, "_is_compiling", lambda: True)
    monkeypatch.setattr(ops, "_op_fwd", torch.ops.darn.fwd if darn.HAS_CUSTOM_OP else _EmulatedOp.apply)
    xg = x.clone().requires_grad_()
    out3, ro3 = torch.empty_like(x), torch.empty_like(r)
    y, h = darn.rms_norm_fn(xg, mod.weight, None, r, prenorm=True, eps=1e-5, out=out3, residual_out=ro3)
    assert_bitwise(out3, want[0].detach())
    assert_bitwise(ro3, want[1].detach())
    assert y.data_ptr() == out3.data_ptr() and y.requires_grad


def test_preallocated_outputs_errors():
    x, r = make((4, 16), torch.float32), make((4, 16), torch.bfloat16)
    w = torch.ones(16)
    with pytest.raises(ValueError, match="out has shape"):
        darn.rms_norm_fn(x, w, None, r, out=torch.empty(4, 17))
    with pytest.raises(ValueError, match="residual_out has shape"):
        darn.rms_norm_fn(x, w, None, r, residual_out=torch.empty(2, 16, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="out has dtype torch.float16, the call's out is torch.float32"):
        darn.rms_norm_fn(x, w, None, r, out=torch.empty(4, 16, dtype=torch.float16), out_dtype=torch.float32)
    with pytest.raises(TypeError, match="float32, torch.float16 and torch.bfloat16"):
        darn.rms_norm_fn(x, w, None, r, out=torch.empty(4, 16, dtype=torch.float64))
    with pytest.raises(TypeError, match="residual_out has dtype torch.float32, the call's residual_out is "
                                        "torch.bfloat16"):
        darn.rms_norm_fn(x, w, None, r, prenorm=True, residual_out=torch.empty(4, 16))
    with pytest.raises(ValueError, match="out is on meta but x is on cpu"):
        darn.rms_norm_fn(x, w, None, r, out=torch.empty(4, 16, device="meta"))
    with pytest.raises(TypeError, match="out must be a torch.Tensor or None, got list"):
        darn.rms_norm_fn(x, w, None, r, out=[0.0] * 64)
    with pytest.raises(TypeError, match="residual_out must be a torch.Tensor or None, got int"):
        darn.rms_norm_fn(x, w, None, r, residual_out=3)
    # layouts darn cannot write: last dim strided (interleaved columns), broadcast rows, leading dims that
    # do not flatten into rows
    with pytest.raises(ValueError, match="not rows of N contiguous elements"):
        darn.rms_norm_fn(x, w, None, r, out=torch.empty(4, 16, 2)[..., 0])
    with pytest.raises(ValueError, match="not rows of N contiguous elements"):
        darn.rms_norm_fn(x, w, None, r, out=torch.empty(1, 16).expand(4, 16))
    x3 = make((2, 3, 16), torch.float32)
    with pytest.raises(ValueError, match="not rows of N contiguous elements"):
        darn.rms_norm_fn(x3, w, None, out=torch.empty(3, 2, 16).transpose(0, 1))
    # overlaps: darn_fwd's check, named for out= / residual_out=
    buf = torch.empty(4, 24)
    with pytest.raises(darn.DarnArgumentError, match="out= / residual_out= may not overlap.*output out overlaps "
                                                     "input x"):
        xo = buf[:, :16]
        darn.rms_norm_fn(xo, w, None, out=buf[:, 8:24])
    shared = torch.empty(4, 16, dtype=torch.bfloat16)
    with pytest.raises(darn.DarnArgumentError, match="overlaps"):
        darn.rms_norm_fn(x.bfloat16(), w, None, r, prenorm=True, out=shared, residual_out=shared)
    with pytest.raises(darn.DarnArgumentError, match="overlaps input weight"):
        wide = torch.ones(4, 16)
        darn.rms_norm_fn(x, wide[3], None, r, out=wide)
    assert isinstance(darn.DarnArgumentError(9, "m"), ValueError)
    # in place on x is allowed with the same dtype and stride only
    xb = x.bfloat16()
    with pytest.raises(darn.DarnArgumentError, match="in place is allowed only"):
        darn.rms_norm_fn(xb, w, None, out=xb.view(torch.float16))
    # autograd: out= may not require grad, and may not be x when the backward keeps x as h
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="out= requires grad"):
        darn.rms_norm_fn(x, wg, None, r, out=torch.empty(4, 16, requires_grad=True))
    with pytest.raises(ValueError, match="out=x in place with autograd"):
        darn.rms_norm_fn(x, wg, None, out=x)
    with torch.no_grad():  # under no_grad an output that requires grad is fine (as for torch's in-place ops)
        o = torch.empty(4, 16, requires_grad=True)
        assert darn.rms_norm_fn(xg, wg, None, r, out=o) is o


@pytest.mark.parametrize("cfg", [(True, torch.bfloat16, torch.bfloat16, 0.0, False, False),
                                 (False, torch.float32, torch.float32, 0.0, True, False),
                                 (True, torch.bfloat16, torch.float32, 0.0, True, False),  # two dtypes: no alias
                                 (True, torch.float16, torch.float16, 0.2, False, False),  # dropout: no alias
                                 (False, torch.float32, torch.float32, 0.0, False, True)],  # rowscale: no alias
                         ids=["rms-bf16", "ln-f32-prenorm", "two-dtypes", "dropout", "rowscale"])
def test_dresidual_is_dx_only_when_the_bits_are_equal(cfg):
    """With p = 0, no rowscale and one dtype for x and residual, the backward returns dx as dresidual too (one
    tensor, as torch's add does): its bits are the dresidual darn_bwd writes when asked for it."""
    from darn import ops
    is_rms, xd, rd, p, prenorm, has_rs = cfg
    n = 40
    x, r = make((6, n), xd, True), make((6, n), rd, True)
    w = make((n,), torch.float32, True, 0.2, 1.0)
    rs = torch.rand(6) + 0.5 if has_rs else None
    outs = _flat(darn.layer_norm_fn(x, w, None, r, dropout_p=p, rowscale=rs, prenorm=prenorm, is_rms_norm=is_rms,
                                    seed=3))
    gy = make((6, n), xd)
    gh = make((6, n), rd)
    h, weight, rstd, mean, rowscale, mask, rng, (fwd, bcfg) = ops._saved(outs[0].grad_fn)
    dx, dres, dw, _ = ops._bwd_run(fwd[0], fwd[8], fwd[7], gy, h, weight, rstd, mean, rowscale,
                                   gh if prenorm else None, mask, rng, True)
    torch.autograd.backward(outs, [gy, gh] if prenorm else [gy])
    assert_bitwise(x.grad, dx, "dx")
    assert_bitwise(r.grad, dres, "dresidual")
    assert_bitwise(w.grad, dw, "dweight")
    alias = p == 0.0 and not has_rs and xd == rd
    assert bcfg[9] == alias
    if alias:
        assert_bitwise(dres, dx, "dresidual = dx")
