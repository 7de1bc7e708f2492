"""flash-attn's parallel residual through darn (CPU backend): layer_norm_fn / rms_norm_fn with x1, weight1, bias1.

darn's formula: h = dropout(x * rowscale) + dropout1(x1) + residual, y = norm(h) * w' + b, y1 = norm(h) * w1' + b1,
the two keep masks from one (seed, offset), x1's at Philox element index i + 2^63 (include/darn/darn.h, "Parallel
residual"). Checked here: values against an fp64 reference with the masks darn returns, gradients against torch
autograd of that reference, flash-attn's return tuples, its GPT ParallelBlock usage, repeatable bits, bad inputs."""
import itertools

import pytest
import torch

import darn
from conftest import DTYPES, ULP, assert_bitwise, assert_close_to, keep_mask, philox4x32_10, residual_out_dtype

_M32 = 0xFFFFFFFF


def make(shape, dtype, requires_grad=False, scale=1.0, shift=0.0):
    t = (torch.randn(shape, dtype=torch.float32) * scale + shift).to(dtype)
    return t.requires_grad_(requires_grad)


def keep_mask1(m, n, p, seed, offset):
    """x1's keep bits: element i = r*N + c uses word i + 2^63 of the (seed, subsequence offset) Philox stream."""
    t = int(p * 2.0 ** 32)
    key = (seed & _M32, (seed >> 32) & _M32)
    out = torch.zeros(m * n, dtype=torch.bool)
    for i in range(m * n):
        j = i + (1 << 63)
        q = j // 4
        block = philox4x32_10((q & _M32, q >> 32, offset & _M32, (offset >> 32) & _M32), key)
        out[i] = block[j % 4] >= t
    return out.reshape(m, n)


def ref_parallel(x, w, b, res, x1, w1, b1, eps, p, rs, keep, keep1, is_rms, zc, h_round):
    """fp64 math of darn's formula. h_round: darn's residual_out (h rounded to its dtype), used as h's value
    (straight through, so gradients flow as through the unrounded sum). Returns (y, y1 or None, h before
    rounding), differentiable w.r.t. every float input."""
    v = x.double()
    if rs is not None:
        v = v * rs.double().reshape(v.shape[:-1] + (1,))
    scale = float(torch.tensor(1.0 / (1.0 - p), dtype=torch.float32)) if 0.0 < p < 1.0 else (0.0 if p >= 1 else 1.0)
    if p > 0.0:
        v = torch.where(keep, v * scale, torch.zeros_like(v))
    if x1 is not None:
        u = x1.double()
        if p > 0.0:
            u = torch.where(keep1, u * scale, torch.zeros_like(u))
        v = v + u
    if res is not None:
        v = v + res.double()
    h = v + (h_round.detach().double() - v.detach())
    e = float(torch.tensor(eps, dtype=torch.float32))
    if is_rms:
        xhat = h * torch.rsqrt((h * h).mean(-1, keepdim=True) + e)
    else:
        d = h - h.mean(-1, keepdim=True)
        xhat = d * torch.rsqrt((d * d).mean(-1, keepdim=True) + e)

    def out(wt, bt):
        wp = wt.double() + 1.0 if zc else wt.double()
        y = xhat * wp
        return y + bt.double() if bt is not None else y
    return out(w, b), (out(w1, b1) if w1 is not None else None), v


CASES = [
    # norm, x, residual, weight, bias, out, rowscale, zero-centered, residual_in_fp32, p, x1?, weight1?, bias1?
    ("rms", "f32", None, "f32", None, None, False, False, False, 0.0, True, True, False),
    ("rms", "bf16", "f32", "bf16", None, None, False, False, False, 0.2, True, True, False),
    ("rms", "f16", "f16", "f32", None, "f32", True, False, False, 0.3, True, False, False),
    ("rms", "bf16", None, "f32", None, None, False, True, True, 0.3, True, True, False),
    ("rms", "f32", "f32", "f32", None, None, False, False, False, 0.25, False, True, False),
    ("layer", "f32", "f32", "f32", "f32", None, False, False, False, 0.0, True, True, True),
    ("layer", "bf16", "bf16", "bf16", "bf16", None, True, True, False, 0.25, True, True, True),
    ("layer", "f16", None, "f16", "f32", "bf16", False, False, True, 0.1, True, True, True),
    ("layer", "f32", "bf16", "f32", None, None, False, False, False, 0.5, True, True, True),
    ("layer", "f32", None, "f32", "f32", None, False, True, False, 0.0, False, True, True),
    ("layer", "bf16", "f32", "bf16", "bf16", None, False, False, False, 0.4, True, False, False),
]


def _grads_close(got, ref, gscale, dtype, rows, what):
    assert got is not None and got.dtype == dtype, what
    scale = ref.abs().max().item() + gscale
    tol = 2 * ULP[got.dtype] * ref.abs() + 1e-5 * scale * (1 + rows / 8)
    err = (got.double() - ref).abs()
    assert (err <= tol).all(), "%s: max err %g, tol there %g" % (what, err.max().item(),
                                                                tol.flatten()[err.argmax()].item())


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c))
@pytest.mark.parametrize("shape", [(3, 2, 40), (5, 96)], ids=["3x2x40", "5x96"])
def test_values_masks_and_grads_vs_fp64(case, shape):
    norm, xd, rd, wd, bd, od, has_rs, zc, rfp32, p, has_x1, has_w1, has_b1 = case
    is_rms = norm == "rms"
    n = shape[-1]
    m = 1
    for s in shape[:-1]:
        m *= s
    x = make(shape, DTYPES[xd], True)
    x1 = make(shape, DTYPES[xd], True) if has_x1 else None
    res = make(shape, DTYPES[rd], True) if rd else None
    w = make((n,), DTYPES[wd], True, 0.5, 0.0 if zc else 1.0)
    w1 = make((n,), DTYPES[wd], True, 0.5, 0.0 if zc else 1.0) if has_w1 else None
    bdt = DTYPES[bd] if bd else (DTYPES[wd] if has_b1 else None)
    b = make((n,), DTYPES[bd], True, 0.1) if bd else None
    b1 = make((n,), bdt, True, 0.1) if has_b1 else None
    rs = torch.rand(shape[:-1]) + 0.5 if has_rs else None
    od_t = DTYPES[od] if od else None
    seed, offset = 4321 + m, 11
    outs = darn.layer_norm_fn(x, w, b, res, x1, w1, b1, eps=1e-5, dropout_p=p, rowscale=rs, prenorm=True,
                              residual_in_fp32=rfp32, zero_centered_weight=zc, is_rms_norm=is_rms,
                              return_dropout_mask=True, out_dtype=od_t, seed=seed, offset=offset)
    outs = list(outs)
    y = outs.pop(0)
    y1 = outs.pop(0) if has_w1 else None
    h, mask, mask1 = outs
    out_dtype = od_t or x.dtype
    assert y.shape == x.shape and y.dtype == out_dtype
    if has_w1:
        assert y1.shape == x.shape and y1.dtype == out_dtype
    assert h.shape == x.shape and h.dtype == residual_out_dtype(x, res, rfp32)
    if p > 0:
        assert mask.dtype == torch.bool and mask.shape == x.shape
        assert torch.equal(mask.reshape(m, n), keep_mask(m, n, p, seed, offset))
        if has_x1:
            assert mask1.dtype == torch.bool and mask1.shape == x.shape
            assert torch.equal(mask1.reshape(m, n), keep_mask1(m, n, p, seed, offset))
            assert not torch.equal(mask, mask1)
        else:
            assert mask1 is None
    else:
        assert mask is None and mask1 is None
    leaves = [x, w, b, res, x1, w1, b1]
    refs = [t.detach().clone().requires_grad_(True) if t is not None else None for t in leaves]
    y64, y164, h64 = ref_parallel(refs[0], refs[1], refs[2], refs[3], refs[4], refs[5], refs[6], 1e-5, p, rs, mask,
                                  mask1, is_rms, zc, h)
    assert_close_to(h, h64, h.dtype, rel=1)
    assert_close_to(y, y64, out_dtype, rel=1)
    if has_w1:
        assert_close_to(y1, y164, out_dtype, rel=1)
    # gradients through every output (residual_out's as dresidual_out)
    gy = torch.randn(shape).to(out_dtype)
    gy1 = torch.randn(shape).to(out_dtype)
    gh = torch.randn(shape).to(h.dtype)
    got_outs, ref_outs, gs = [y, h], [y64, h64], [gy, gh]
    if has_w1:
        got_outs.append(y1)
        ref_outs.append(y164)
        gs.append(gy1)
    torch.autograd.backward(got_outs, gs)
    torch.autograd.backward(ref_outs, [g.double() for g in gs])
    gscale = max(g.abs().max().item() for g in gs)
    for t, r, what in zip(leaves, refs, ("dx", "dweight", "dbias", "dresidual", "dx1", "dweight1", "dbias1")):
        if t is None:
            continue
        _grads_close(t.grad, r.grad, gscale, t.dtype, m, what)


@pytest.mark.parametrize("is_rms", [True, False])
def test_gradient_through_out1_only_and_prenorm_only(is_rms):
    n = 48
    x, x1, r = (make((4, n), torch.float32, True) for _ in range(3))
    w, w1 = make((n,), torch.float32, True, 0.3, 1.0), make((n,), torch.float32, True, 0.3, 1.0)
    b1 = make((n,), torch.float32, True, 0.1) if not is_rms else None
    kw = dict(eps=1e-5, dropout_p=0.2, prenorm=True, is_rms_norm=is_rms, seed=77, return_dropout_mask=True)
    y, y1, h, mask, mask1 = darn.layer_norm_fn(x, w, None, r, x1, w1, b1, **kw)
    g = torch.randn(4, n)
    y1.backward(g)  # only out1: dy is zero
    assert torch.equal(w.grad, torch.zeros(n))
    refs = [t.detach().clone().requires_grad_(True) if t is not None else None for t in (x, w, r, x1, w1, b1)]
    _, y164, _ = ref_parallel(refs[0], refs[1], None, refs[2], refs[3], refs[4], refs[5], 1e-5, 0.2, None, mask,
                              mask1, is_rms, False, h)
    y164.backward(g.double())
    for t, rf, what in zip((x, r, x1, w1, b1), (refs[0], refs[2], refs[3], refs[4], refs[5]),
                           ("dx", "dresidual", "dx1", "dweight1", "dbias1")):
        if t is not None:
            _grads_close(t.grad, rf.grad, 1.0, t.dtype, 4, what)
    # only the prenorm output: dx = keep * scale, dx1 = keep1 * scale, dresidual = 1, no weight gradients
    for t in (x, x1, r, w, w1):
        t.grad = None
    y, y1, h = darn.layer_norm_fn(x, w, None, r, x1, w1, None, eps=1e-5, dropout_p=0.2, prenorm=True,
                                  is_rms_norm=is_rms, seed=77)
    h.sum().backward()
    scale = float(torch.tensor(1 / 0.8, dtype=torch.float32))
    assert torch.equal(x.grad, mask.float() * scale)
    assert torch.equal(x1.grad, mask1.float() * scale)
    assert torch.equal(r.grad, torch.ones_like(r))
    assert torch.equal(w.grad, torch.zeros(n)) and torch.equal(w1.grad, torch.zeros(n))


def test_gradcheck_fp32_parallel():
    x, x1, r = (make((3, 16), torch.float32, True) for _ in range(3))
    w, w1 = make((16,), torch.float32, True, 0.3, 1.0), make((16,), torch.float32, True, 0.3, 1.0)
    b, b1 = make((16,), torch.float32, True, 0.1), make((16,), torch.float32, True, 0.1)

    def f(x, x1, r, w, b, w1, b1):
        return darn.layer_norm_fn(x, w, b, r, x1, w1, b1, dropout_p=0.3, prenorm=True, seed=5)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.autograd.gradcheck(f, (x, x1, r, w, b, w1, b1), eps=1e-2, atol=2e-2, rtol=2e-2)


def flash_attn_return_names(has_w1, prenorm, return_dropout_mask):
    """flash_attn.ops.triton.layer_norm.LayerNormFn.forward's return value, by name (its branches, restated)."""
    if not return_dropout_mask:
        if not has_w1:
            return "y" if not prenorm else ("y", "residual_out")
        return ("y", "y1") if not prenorm else ("y", "y1", "residual_out")
    if not has_w1:
        return ("y", "dropout_mask", "dropout_mask1") if not prenorm else ("y", "residual_out", "dropout_mask",
                                                                           "dropout_mask1")
    return (("y", "y1", "dropout_mask", "dropout_mask1") if not prenorm
            else ("y", "y1", "residual_out", "dropout_mask", "dropout_mask1"))


@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
def test_return_tuples_are_flash_attns(p, grad):
    n = 32
    combos = itertools.product([False, True], repeat=6)  # x1, weight1, bias1, residual, prenorm, return mask
    seen = 0
    for has_x1, has_w1, has_b1, has_res, prenorm, ret_mask in combos:
        x = make((2, 3, n), torch.float32, grad)
        x1 = make((2, 3, n), torch.float32, grad) if has_x1 else None
        r = make((2, 3, n), torch.float32, grad) if has_res else None
        w = make((n,), torch.float32, grad, 0.2, 1.0)
        w1 = make((n,), torch.float32, grad, 0.2, 1.0) if has_w1 else None
        b1 = make((n,), torch.float32, grad, 0.1) if has_b1 else None
        call = lambda: darn.rms_norm_fn(x, w, None, r, x1, w1, b1, dropout_p=p, prenorm=prenorm,  # noqa: E731
                                        return_dropout_mask=ret_mask, seed=3)
        if has_b1 and not has_w1:
            with pytest.raises(ValueError, match="bias1 needs weight1"):
                call()
            continue
        seen += 1
        got = call()
        names = flash_attn_return_names(has_w1, prenorm, ret_mask)
        if isinstance(names, str):
            assert isinstance(got, torch.Tensor), (has_x1, has_w1, has_b1, has_res, prenorm, ret_mask)
            continue
        assert isinstance(got, tuple) and len(got) == len(names), (names, got)
        h_is_x = not has_x1 and not has_res and p == 0.0
        for name, t in zip(names, got):
            if name == "dropout_mask":
                assert (t is None) == (p == 0.0), name
            elif name == "dropout_mask1":
                assert (t is None) == (p == 0.0 or not has_x1), name
            elif name == "residual_out" and h_is_x:
                assert t is x  # as in flash-attn: h is x itself
            else:
                assert isinstance(t, torch.Tensor) and t.shape == x.shape, name
            if name.startswith("dropout_mask") and t is not None:
                assert t.dtype == torch.bool and t.shape == x.shape
        if grad:
            used = [t for nm, t in zip(names, got) if nm in ("y", "y1") or (nm == "residual_out" and not h_is_x)]
            sum(t.sum() for t in used).backward()
            assert x.grad is not None and w.grad is not None
            for t in (x1, r, w1, b1):
                assert t is None or t.grad is not None
    assert seen == 48


def _block_fused(hs1, hs2, residual, norm1, norm2, tied_norm, p, residual_in_fp32, seed):
    """flash_attn/modules/block.py ParallelBlock.forward's fused_dropout_add_ln branch, with darn's layer_norm_fn
    (and seed= so that the two runs compare)."""
    weight2, bias2 = (norm2.weight, norm2.bias) if not tied_norm else (None, None)
    hidden_states1, *rest, residual = darn.layer_norm_fn(
        hs1, norm1.weight, norm1.bias, residual=residual, x1=hs2, weight1=weight2, bias1=bias2, eps=norm1.eps,
        dropout_p=p, prenorm=True, residual_in_fp32=residual_in_fp32, is_rms_norm=isinstance(norm1, darn.RMSNorm),
        seed=seed)
    if tied_norm:
        hidden_states2 = hidden_states1
    else:
        hidden_states2, = rest
    return hidden_states1, hidden_states2, residual


def _block_unfused(hs1, hs2, residual, norm1, norm2, tied_norm, residual_in_fp32, keep=None, keep1=None, p=0.0):
    """ParallelBlock.forward's unfused branch (torch ops; dropout from the given masks)."""
    def drop(t, k):
        if p == 0.0:
            return t
        return torch.where(k, t * float(torch.tensor(1 / (1 - p), dtype=torch.float32)), torch.zeros_like(t))
    dropped1 = drop(hs1, keep)
    if hs2 is not None:
        dropped2 = drop(hs2, keep1)
        residual = (residual + dropped1 + dropped2) if residual is not None else dropped1 + dropped2
    else:
        residual = (residual + dropped1) if residual is not None else dropped1
    if residual_in_fp32:
        residual = residual.to(torch.float32)

    def norm(mod, t):
        t = t.to(mod.weight.dtype).float()
        if isinstance(mod, darn.RMSNorm):
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + mod.eps) * mod.weight.float()
        return torch.nn.functional.layer_norm(t, t.shape[-1:], mod.weight.float(),
                                              mod.bias.float() if mod.bias is not None else None, mod.eps)
    hidden_states1 = norm(norm1, residual)
    hidden_states2 = norm(norm2, residual) if not tied_norm else hidden_states1
    return hidden_states1, hidden_states2, residual


@pytest.mark.parametrize("norm_cls", [darn.LayerNorm, darn.RMSNorm], ids=["LayerNorm", "RMSNorm"])
@pytest.mark.parametrize("tied_norm", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("first", [False, True], ids=["block", "first_block"])
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_gpt_parallel_block_pattern(norm_cls, tied_norm, first, p):
    """Two GPT-J / GPT-NeoX style parallel blocks in sequence, as flash-attn's ParallelBlock runs them with
    fused_dropout_add_ln: the first one without hidden_states2 and residual, later ones with both."""
    dim, torch_dtype = 64, torch.float32
    norm1 = norm_cls(dim, eps=1e-5)
    norm2 = norm_cls(dim, eps=1e-5)
    with torch.no_grad():
        for mod in (norm1, norm2):
            mod.weight.normal_(1.0, 0.2)
            if mod.bias is not None:
                mod.bias.normal_(0.0, 0.1)
    hs1 = make((2, 5, dim), torch_dtype, True)
    hs2 = None if first else make((2, 5, dim), torch_dtype, True)
    residual = None if first else make((2, 5, dim), torch.float32, True)
    a1, a2, ares = _block_fused(hs1, hs2, residual, norm1, norm2, tied_norm, p, True, seed=9)
    assert ares.dtype == torch.float32 and a1.shape == hs1.shape and a2.shape == hs1.shape
    if tied_norm:
        assert a2 is a1
    # the same masks for the unfused reference
    if p > 0.0:
        outs = darn.layer_norm_fn(hs1.detach(), norm1.weight.detach(), None, residual, hs2, dropout_p=p, seed=9,
                                  return_dropout_mask=True, is_rms_norm=norm_cls is darn.RMSNorm)
        keep, keep1 = outs[1], outs[2]
    else:
        keep = keep1 = None
    b1, b2, bres = _block_unfused(hs1, hs2, residual, norm1, norm2, tied_norm, True, keep, keep1, p)
    torch.testing.assert_close(ares, bres, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a1, b1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a2, b2, rtol=1e-5, atol=1e-5)
    # the block's outputs feed the mixer, the MLP and the next block's residual: gradients through all three
    g1, g2, gr = (torch.randn_like(a1) for _ in range(3))
    params = [t for t in (hs1, hs2, residual, norm1.weight, norm1.bias, norm2.weight, norm2.bias) if t is not None]
    outs_a = [a1, ares] + ([] if tied_norm else [a2])
    grads_a = [g1 + (g2 if tied_norm else 0), gr] + ([] if tied_norm else [g2])
    ga = torch.autograd.grad(outs_a, params, grads_a, allow_unused=True, retain_graph=True)
    outs_b = [b1, bres] + ([] if tied_norm else [b2])
    gb = torch.autograd.grad(outs_b, params, grads_a, allow_unused=True)
    for i, (u, v) in enumerate(zip(ga, gb)):
        if v is None:
            assert u is None or not u.any(), i
            continue
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-4, msg="gradient %d" % i)
    # a second block on the first one's outputs (residual_in_fp32 with a residual: h in the residual's dtype)
    c1, c2, cres = _block_fused(a1, a2, ares, norm1, norm2, tied_norm, p, True, seed=10)
    assert cres.dtype == torch.float32
    (c1.sum() + c2.sum() + cres.sum()).backward()
    assert hs1.grad is not None and norm1.weight.grad is not None


def test_repeatable_bits_and_fresh_masks():
    n = 80
    x, x1, r = (make((6, n), torch.bfloat16) for _ in range(3))
    w, w1 = make((n,), torch.float32, False, 0.2, 1.0), make((n,), torch.float32, False, 0.2, 1.0)
    b, b1 = make((n,), torch.float32, False, 0.1), make((n,), torch.float32, False, 0.1)

    def call(**kw):
        return darn.layer_norm_fn(x, w, b, r, x1, w1, b1, dropout_p=0.3, prenorm=True, return_dropout_mask=True,
                                  **kw)
    a, c = call(seed=123, offset=5), call(seed=123, offset=5)
    for u, v, what in zip(a, c, ("y", "y1", "h", "mask", "mask1")):
        assert_bitwise(u, v, what)
    d = call(seed=123, offset=6)
    assert not torch.equal(a[3], d[3]) and not torch.equal(a[4], d[4])
    torch.manual_seed(42)
    e1, e2 = call(), call()
    torch.manual_seed(42)
    f1, f2 = call(), call()
    for u, v in zip(e1 + e2, f1 + f2):
        assert_bitwise(u, v)
    assert not torch.equal(e1[3], e2[3]) and not torch.equal(e1[4], e2[4])
    # no-grad and autograd paths, N-D and 2-D, a strided x1: the same bits
    xg = x.clone().requires_grad_(True)
    g = darn.layer_norm_fn(xg, w, b, r, x1, w1, b1, dropout_p=0.3, prenorm=True, return_dropout_mask=True,
                           seed=123, offset=5)
    for u, v in zip(a, g):
        assert_bitwise(u, v.detach())
    big = make((6, 2 * n), torch.bfloat16)
    big[:, n:] = x1
    x3 = x.reshape(2, 3, n)
    k = darn.layer_norm_fn(x3, w, b, r.reshape(2, 3, n), big[:, n:].reshape(2, 3, n), w1, b1, dropout_p=0.3,
                           prenorm=True, return_dropout_mask=True, seed=123, offset=5)
    for u, v in zip(a, k):
        assert_bitwise(u, v.reshape(u.shape))


def test_backward_regenerates_both_masks_bitwise():
    n = 64
    base = [make((5, n), torch.float16) for _ in range(3)]
    w, w1 = make((n,), torch.float32, False, 0.2, 1.0), make((n,), torch.float32, False, 0.2, 1.0)
    gy, gy1 = make((5, n), torch.float16), make((5, n), torch.float16)
    grads = []
    for ret_mask in (False, True):
        x, x1, r = [t.clone().requires_grad_(True) for t in base]
        wa, w1a = w.clone().requires_grad_(True), w1.clone().requires_grad_(True)
        outs = darn.rms_norm_fn(x, wa, None, r, x1, w1a, dropout_p=0.4, seed=8, return_dropout_mask=ret_mask)
        torch.autograd.backward([outs[0], outs[1]], [gy, gy1])
        grads.append([x.grad, x1.grad, r.grad, wa.grad, w1a.grad])
    for u, v, what in zip(grads[0], grads[1], ("dx", "dx1", "dresidual", "dweight", "dweight1")):
        assert_bitwise(u, v, what)


def test_bad_parallel_arguments_raise_clear_errors():
    x = make((2, 8), torch.float32)
    w = torch.ones(8)
    with pytest.raises(ValueError, match="x1 has shape"):
        darn.layer_norm_fn(x, w, None, x1=torch.ones(2, 7))
    with pytest.raises(ValueError, match="x1 has shape"):
        darn.layer_norm_fn(x, w, None, x1=torch.ones(1, 2, 8))
    with pytest.raises(TypeError, match="x1 has dtype"):
        darn.layer_norm_fn(x, w, None, x1=x.bfloat16())
    with pytest.raises(ValueError, match="bias1 needs weight1"):
        darn.layer_norm_fn(x, w, None, x1=x, bias1=torch.zeros(8))
    with pytest.raises(TypeError, match="weight1 has dtype"):
        darn.layer_norm_fn(x, w, None, weight1=w.half())
    with pytest.raises(ValueError, match="weight1 has shape"):
        darn.layer_norm_fn(x, w, None, weight1=torch.ones(9))
    with pytest.raises(ValueError, match="bias1 has shape"):
        darn.layer_norm_fn(x, w, None, weight1=w, bias1=torch.ones(2, 4))
    with pytest.raises(TypeError, match="bias1 has dtype"):
        darn.layer_norm_fn(x, w, torch.zeros(8), weight1=w, bias1=torch.zeros(8, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="x1 must be a torch.Tensor"):
        darn.layer_norm_fn(x, w, None, x1=[1.0] * 8)
    with pytest.raises(TypeError, match="float32, torch.float16 and torch.bfloat16"):
        darn.layer_norm_fn(x.double(), w.double(), None, weight1=w.double())
    # the usual checks run for parallel calls too
    with pytest.raises(ValueError, match="dropout_p"):
        darn.layer_norm_fn(x, w, None, x1=x, dropout_p=2.0)
    with pytest.raises(ValueError, match="residual has shape"):
        darn.layer_norm_fn(x, w, None, torch.ones(3, 8), x1=x)
    # a cached plan does not skip the checks of a call with other metadata
    darn.layer_norm_fn(x, w, None, x1=x, weight1=w)
    with pytest.raises(TypeError, match="weight1 has dtype"):
        darn.layer_norm_fn(x, w, None, x1=x, weight1=w.bfloat16())


def test_preallocated_outputs_and_empty_batch_parallel():
    n = 40
    x, x1, r = (make((4, n), torch.float32) for _ in range(3))
    w, w1 = make((n,), torch.float32, False, 0.2, 1.0), make((n,), torch.float32, False, 0.2, 1.0)
    ref = darn.rms_norm_fn(x, w, None, r, x1, w1, dropout_p=0.2, prenorm=True, seed=4)
    buf = torch.empty(4, 2 * n)
    y, y1, h = darn.rms_norm_fn(x, w, None, r, x1, w1, dropout_p=0.2, prenorm=True, seed=4, out=buf[:, :n],
                                residual_out=buf[:, n:])
    assert y.data_ptr() == buf.data_ptr() and h.data_ptr() == buf[:, n:].data_ptr()
    for u, v in zip(ref, (y, y1, h)):
        assert_bitwise(u, v)
    xe = torch.empty(0, 16, requires_grad=True)
    we = torch.ones(16, requires_grad=True)
    w1e = torch.ones(16, requires_grad=True)
    b1e = torch.zeros(16, requires_grad=True)
    ye, y1e = darn.layer_norm_fn(xe, we, None, None, torch.empty(0, 16), w1e, b1e, dropout_p=0.1)
    assert ye.shape == (0, 16) and y1e.shape == (0, 16)
    (ye.sum() + y1e.sum()).backward()
    assert torch.equal(w1e.grad, torch.zeros(16)) and torch.equal(b1e.grad, torch.zeros(16))
