"""Shared helpers: import darn (the checkout's, or with DARN_TEST_INSTALLED=1 the installed package's), an fp64
reference, and an independent Philox.

Two ways to run these tests:
- on the checkout (default): python/ goes first on sys.path, and DARN_LIBRARY defaults to a build/*/libdarn.so of
  the checkout when one exists;
- on the installed package (DARN_TEST_INSTALLED=1, as tools/test-all's python stage does): nothing is added to the
  path and DARN_LIBRARY is left as it is (unset: the library inside the package); a darn imported from this
  checkout is an error, so run pytest from outside python/ (`python -m pytest` puts the current folder first).
"""
import os
import sys
import tempfile

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
PYROOT = os.path.dirname(HERE)
REPO = os.path.dirname(PYROOT)
INSTALLED = os.environ.get("DARN_TEST_INSTALLED") == "1"
if not INSTALLED:
    if PYROOT not in sys.path:
        sys.path.insert(0, PYROOT)
    if "DARN_LIBRARY" not in os.environ:  # convenience for a checkout with build/none
        for cand in ("build/none/libdarn.so", "build/nvidia/libdarn.so", "build/amd/libdarn.so"):
            if os.path.exists(os.path.join(REPO, cand)):
                os.environ["DARN_LIBRARY"] = os.path.join(REPO, cand)
                break

import darn  # noqa: E402  (after the path setup)

if INSTALLED and os.path.realpath(darn.__file__).startswith(os.path.realpath(PYROOT) + os.sep):
    raise ImportError("DARN_TEST_INSTALLED=1 but darn was imported from the checkout (%s), not the installed package: "
                      "run pytest from outside %s" % (darn.__file__, PYROOT))


def subprocess_env(**env):
    """(env, cwd) for a Python subprocess (sys.executable) that imports the same darn as these tests, with the
    environment variables env set (None: unset)."""
    e = dict(os.environ)
    if not INSTALLED:
        e["PYTHONPATH"] = PYROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e, (PYROOT if not INSTALLED else tempfile.gettempdir())

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

# Relative tolerance of one rounding to each dtype (for values rounded once more than the reference).
ULP = {torch.float32: 2.0 ** -23, torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}


def residual_out_dtype(x, residual, residual_in_fp32):
    if residual is not None:
        return residual.dtype
    return torch.float32 if residual_in_fp32 else x.dtype


def reference(x, weight, bias, residual=None, eps=1e-6, dropout_p=0.0, rowscale=None, keep=None,
              is_rms_norm=False, zero_centered_weight=False, residual_in_fp32=False, out_dtype=None):
    """fp64 math of darn's formula (h rounded to its dtype once, as darn stores and reloads it).
    keep: bool tensor of x's shape (the dropout mask) when dropout_p > 0. Returns (y fp64, h fp64),
    differentiable w.r.t. the float inputs (x, weight, bias, residual), which may require grad."""
    v = x.double()
    if rowscale is not None:
        v = v * rowscale.double().reshape(v.shape[:-1] + (1,))
    if dropout_p > 0.0:
        scale = float(torch.tensor(1.0 / (1.0 - dropout_p), dtype=torch.float32)) if dropout_p < 1.0 else 0.0
        v = torch.where(keep, v * scale, torch.zeros_like(v))
    h = v + residual.double() if residual is not None else v
    rd = residual_out_dtype(x, residual, residual_in_fp32)
    # Round like darn (to rd) without cutting the gradient: h + (round(h) - h).detach().
    h = h + (h.detach().to(rd).double() - h.detach())
    w = weight.double() + 1.0 if zero_centered_weight else weight.double()
    if is_rms_norm:
        rstd = torch.rsqrt((h * h).mean(-1, keepdim=True) + float(torch.tensor(eps, dtype=torch.float32)))
        y = h * rstd * w
    else:
        mu = h.mean(-1, keepdim=True)
        d = h - mu
        rstd = torch.rsqrt((d * d).mean(-1, keepdim=True) + float(torch.tensor(eps, dtype=torch.float32)))
        y = d * rstd * w
    if bias is not None:
        y = y + bias.double()
    return y, h


def assert_close_to(actual, expected64, dtype, rel=8, abs_=None):
    """|actual - expected| <= tol for fp32-accumulated results: a few ulps of the output dtype plus fp32
    accumulation noise, scaled by the magnitude of the row."""
    a = actual.double()
    e = expected64.detach()
    u = ULP[dtype]
    tol = rel * u * (e.abs() + 1.0) + (abs_ if abs_ is not None else 64 * 2.0 ** -23)
    bad = (a - e).abs() > tol
    assert not bad.any(), "max err %g at %s (actual %s expected %s)" % (
        (a - e).abs().max().item(), bad.nonzero()[0].tolist(), a[bad][0].item(), e[bad][0].item())


# ---- an independent Philox4x32-10 (Random123 constants), for the dropout mask --------------------------------
_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & _MASK32, p1 & _MASK32, ((p0 >> 32) ^ c3 ^ k1) & _MASK32, \
            p0 & _MASK32
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def keep_mask(m, n, p, seed, offset):
    """docs/numerics.md §3: element i = r*N + c kept iff word i of the (seed, subsequence offset) stream is
    >= floor(p * 2^32)."""
    t = int(p * 2.0 ** 32)
    key = (seed & _MASK32, (seed >> 32) & _MASK32)
    out = torch.zeros(m * n, dtype=torch.bool)
    block = None
    for i in range(m * n):
        if i % 4 == 0 or block is None:
            q = i // 4
            block = philox4x32_10((q & _MASK32, q >> 32, offset & _MASK32, (offset >> 32) & _MASK32), key)
        out[i] = block[i % 4] >= t
    return out.reshape(m, n)


def bits(t):
    """Exact bit pattern of a float tensor, for bitwise comparisons (NaN-safe)."""
    t = t.detach().contiguous().cpu()
    return t.view(torch.int32) if t.element_size() == 4 else t.view(torch.int16)


def assert_bitwise(a, b, what=""):
    if a is None or b is None:
        assert a is None and b is None, what
        return
    assert a.shape == b.shape and a.dtype == b.dtype, "%s: %s %s vs %s %s" % (what, a.shape, a.dtype, b.shape, b.dtype)
    if a.dtype == torch.bool:
        assert torch.equal(a.cpu(), b.cpu()), what
    else:
        assert torch.equal(bits(a), bits(b)), what


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
